"""Dramatiq on Redis or RabbitMQ: the broker set-up and the `TaskQueue` port."""
