"""The study's SQLite store (the driver is its only writer), the plan and rounds
stored with it, and reading results back."""
