"""Historical market data from provider REST APIs: bars and trades, resumable and idempotent."""
