"""The study file parsed once into a plan: variants, seeds, claims, baseline, order,
and the runs they expand to. A plan grows only by recorded rounds."""
