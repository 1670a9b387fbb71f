"""Device sources: each turns one device family's protocol into Readings."""
