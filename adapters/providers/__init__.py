"""Payment-provider adapters: Stripe- and PayPal-like HTTP clients and the mock server they talk to."""
