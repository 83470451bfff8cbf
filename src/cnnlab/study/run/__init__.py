"""Running a plan: one executor protocol (a session, a feed of runs, events) with
its executors (in process, Ray), the runner and the search."""
