"""The Telegram bot: businesses register, moderators decide, subscribers get digests."""
