"""Notifications to NOTIFY_WEBHOOK_URL: fills, risk rejections, service errors, a daily summary."""
