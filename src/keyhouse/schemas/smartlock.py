"""Smartlock, Smartlock.State, Smartlock.Config (official 3.9.0 names and fields)."""

from __future__ import annotations

from pydantic import Field

from keyhouse.schemas.base import ApiDateTime, ResponseShape


class SmartlockState(ResponseShape):
    mode: int = Field(description="0 uninitialized, 1 pairing, 2 door, 3 continuous, 4 maintenance")
    state: int = Field(description="1 locked, 2 unlocking, 3 unlocked, 4 locking, 5 unlatched …")
    trigger: int = Field(description="0 system, 1 manual, 2 button, 3 automatic, 4 web, 5 app")
    last_action: int
    battery_critical: bool
    battery_charging: bool | None = None
    battery_charge: int | None = Field(None, ge=0, le=100)
    keypad_battery_critical: bool | None = None
    doorsensor_battery_critical: bool | None = None
    door_state: int
    ring_to_open_timer: int
    night_mode: bool


class SmartlockConfig(ResponseShape):
    name: str
    latitude: float
    longitude: float
    auto_unlatch: bool | None = None
    pairing_enabled: bool | None = None
    button_enabled: bool | None = None
    led_enabled: bool | None = None
    timezone_offset: int = Field(description="[deprecated] offset from UTC now, in minutes")
    daylight_saving_mode: int | None = None
    fob_paired: bool | None = None
    single_lock: bool
    advertising_mode: int
    keypad_paired: bool
    keypad2_paired: bool | None = None
    timezone_id: int = Field(ge=0, le=45, description="Nuki's time zone id (37 = Europe/Vienna)")
    device_type: int | None = None
    # Keyhouse: the lock's IANA time zone, in which the daily windows of its keys apply.
    timezone: str | None = Field(None, description="Keyhouse: the lock's IANA time zone")


class Smartlock(ResponseShape):
    smartlock_id: int = Field(description="Device type and Nuki id: int(hex(type) + nukiId, 16)")
    account_id: int
    type: int = Field(description="0 keyturner, 1 box, 2 opener, 3 smartdoor, 4 smartlock 3.0/4")
    auth_id: int
    name: str
    favorite: bool
    config: SmartlockConfig | None = None
    state: SmartlockState | None = None
    firmware_version: int | None = None
    hardware_version: int | None = None
    operation_id: str | None = None
    server_state: int = Field(ge=0, le=4, description="0 ok … 4 offline")
    admin_pin_state: int = Field(ge=0, le=2)
    virtual_device: bool | None = None
    creation_date: ApiDateTime | None = None
    update_date: ApiDateTime | None = None
    error: str | None = None
    opener: bool | None = None
    box: bool | None = None
    smart_door: bool | None = None
    keyturner: bool | None = None
    # Keyhouse: the 8-hex Nuki id printed on the device.
    nuki_id: str | None = Field(None, description="Keyhouse: the 8-hex Nuki id of the device")
    checked_date: ApiDateTime | None = Field(
        None,
        description="Keyhouse: when the server last read all the lock holds and compared it "
        "with the keys (drift check)",
    )
