"""Notifications of new scan entries (docs/notifications.md): message, formats, targets, delivery,
the dedupe ledger and the sensor that ties them together."""

from cryptorun_pipelines.notifications.sensor import (
    SENSOR_NAME,
    build_notification_sensor,
)

__all__ = ["SENSOR_NAME", "build_notification_sensor"]
