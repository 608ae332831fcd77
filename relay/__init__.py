"""The relay's domain: scheduling, dedupe, moderation, fairness, digests, delivery, the bot."""
