"""Delivery: the dispatcher that takes pending emails and webhooks from the outbox,
the senders that attempt them (SMTP, signed HTTP), the retry policy, and the
tracking links put into emails. See docs/delivery.md."""
