"""The device layer: how a change reaches a lock (virtual today, MQTT later)."""
