"""Polygon market data: the stocks WebSocket (polygon-api-client) and the REST history."""
