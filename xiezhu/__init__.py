"""xiezhu: an event-sourced inter-agency message broker for the 证明事项告知承诺制."""

__version__ = "0.1.0"
