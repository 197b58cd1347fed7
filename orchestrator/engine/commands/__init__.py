"""The engine's commands, grouped by concern. Each is a function over one transaction (``unit.Tx``):
it locks its case, checks its action's guard (``rules.require``), and writes through the Tx.
``Engine`` (service.py) runs each in ``Core.run``."""
