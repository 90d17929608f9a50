"""Runs: the runner that claims and executes an activity, the django-q2 tasks and
schedules that queue them, live progress, and re-running past a threshold."""
