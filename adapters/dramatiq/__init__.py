"""Dramatiq on Redis: the broker set-up and the `TaskQueue` port."""
