"""Frontdesk composition root: settings, app factory, runner and CLI."""
