"""What runs by itself: automatic steps (with incidents), the timers, notifications, 逾期视为同意 and the
daily report.

* ``jobs``: the jobs as plain functions over one Engine (no Prefect);
* ``embedded``: a small in-process scheduler (threads) that runs the jobs on their intervals, for one
  machine and the web process (``start_scheduler(settings) -> Scheduler``, ``.stop()``); it never enters
  the Prefect runtime;
* ``prefect_flows``: the same jobs as Prefect flows made of tasks, with retries, backoff and logging;
  ``deploy``: registering them with their schedules on a Prefect server, and the worker;
* ``channels``: e-mail over SMTP and the signed webhook the notify job delivers through.

Importing this package imports nothing of Prefect; only ``prefect_flows`` and ``deploy`` do.
docs/operations.md describes both ways to run them.
"""
