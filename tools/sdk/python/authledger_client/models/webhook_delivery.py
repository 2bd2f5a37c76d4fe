from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.webhook_delivery_status import WebhookDeliveryStatus

T = TypeVar("T", bound="WebhookDelivery")


@_attrs_define
class WebhookDelivery:
    """
    Attributes:
        event_id (str):
        position (int):
        kind (str):
        attempt (int):
        status (WebhookDeliveryStatus):
        response_code (int | None):
        latency_ms (int):
        error (None | str):
        attempted_at (datetime.datetime):
    """

    event_id: str
    position: int
    kind: str
    attempt: int
    status: WebhookDeliveryStatus
    response_code: int | None
    latency_ms: int
    error: None | str
    attempted_at: datetime.datetime
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        event_id = self.event_id

        position = self.position

        kind = self.kind

        attempt = self.attempt

        status = self.status.value

        response_code: int | None
        response_code = self.response_code

        latency_ms = self.latency_ms

        error: None | str
        error = self.error

        attempted_at = self.attempted_at.isoformat()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "event_id": event_id,
                "position": position,
                "kind": kind,
                "attempt": attempt,
                "status": status,
                "response_code": response_code,
                "latency_ms": latency_ms,
                "error": error,
                "attempted_at": attempted_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        event_id = d.pop("event_id")

        position = d.pop("position")

        kind = d.pop("kind")

        attempt = d.pop("attempt")

        status = WebhookDeliveryStatus(d.pop("status"))

        def _parse_response_code(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        response_code = _parse_response_code(d.pop("response_code"))

        latency_ms = d.pop("latency_ms")

        def _parse_error(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        error = _parse_error(d.pop("error"))

        attempted_at = datetime.datetime.fromisoformat(d.pop("attempted_at"))

        webhook_delivery = cls(
            event_id=event_id,
            position=position,
            kind=kind,
            attempt=attempt,
            status=status,
            response_code=response_code,
            latency_ms=latency_ms,
            error=error,
            attempted_at=attempted_at,
        )

        webhook_delivery.additional_properties = d
        return webhook_delivery

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
