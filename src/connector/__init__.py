"""The DealBridge application: app factory, settings, deal store, REST API, jobs and CLI."""

__version__ = "0.1.0"
