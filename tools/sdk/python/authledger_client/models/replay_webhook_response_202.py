from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="ReplayWebhookResponse202")


@_attrs_define
class ReplayWebhookResponse202:
    """
    Attributes:
        id (str):
        url (str):
        events (list[str]): Event kinds (connection.expired) or prefixes ending in '.' (connection.); empty sends every
            kind
        enabled (bool):
        disabled_reason (None | str): Why delivery turned it off (the last failure), until turned on again
        secret_fingerprint (str):
        created_at (datetime.datetime):
        updated_at (datetime.datetime):
        from_position (int):
    """

    id: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: None | str
    secret_fingerprint: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    from_position: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        url = self.url

        events = self.events

        enabled = self.enabled

        disabled_reason: None | str
        disabled_reason = self.disabled_reason

        secret_fingerprint = self.secret_fingerprint

        created_at = self.created_at.isoformat()

        updated_at = self.updated_at.isoformat()

        from_position = self.from_position

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "url": url,
                "events": events,
                "enabled": enabled,
                "disabled_reason": disabled_reason,
                "secret_fingerprint": secret_fingerprint,
                "created_at": created_at,
                "updated_at": updated_at,
                "from_position": from_position,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        url = d.pop("url")

        events = cast(list[str], d.pop("events"))

        enabled = d.pop("enabled")

        def _parse_disabled_reason(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        disabled_reason = _parse_disabled_reason(d.pop("disabled_reason"))

        secret_fingerprint = d.pop("secret_fingerprint")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        from_position = d.pop("from_position")

        replay_webhook_response_202 = cls(
            id=id,
            url=url,
            events=events,
            enabled=enabled,
            disabled_reason=disabled_reason,
            secret_fingerprint=secret_fingerprint,
            created_at=created_at,
            updated_at=updated_at,
            from_position=from_position,
        )

        replay_webhook_response_202.additional_properties = d
        return replay_webhook_response_202

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
