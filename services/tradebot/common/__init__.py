"""What every service shares: settings, models, the stream bus, health and telemetry."""
