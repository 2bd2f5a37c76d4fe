from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.audit_event_actor import AuditEventActor
    from ..models.audit_event_aggregate import AuditEventAggregate


T = TypeVar("T", bound="AuditEvent")


@_attrs_define
class AuditEvent:
    """One event as the audit view shows it (never a secret)

    Attributes:
        position (int):
        event_id (str):
        occurred_at (datetime.datetime):
        workspace_id (str):
        kind (str):
        aggregate (AuditEventAggregate):
        actor (AuditEventActor):
        key_id (str):
        user_id (None | str | Unset):
        auth_config_id (None | str | Unset):
        connection_id (None | str | Unset):
        token_id (None | str | Unset):
        tool (None | str | Unset):
        outcome (None | str | Unset):
        reason (None | str | Unset):
        event_hash (None | str | Unset):
    """

    position: int
    event_id: str
    occurred_at: datetime.datetime
    workspace_id: str
    kind: str
    aggregate: AuditEventAggregate
    actor: AuditEventActor
    key_id: str
    user_id: None | str | Unset = UNSET
    auth_config_id: None | str | Unset = UNSET
    connection_id: None | str | Unset = UNSET
    token_id: None | str | Unset = UNSET
    tool: None | str | Unset = UNSET
    outcome: None | str | Unset = UNSET
    reason: None | str | Unset = UNSET
    event_hash: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        position = self.position

        event_id = self.event_id

        occurred_at = self.occurred_at.isoformat()

        workspace_id = self.workspace_id

        kind = self.kind

        aggregate = self.aggregate.to_dict()

        actor = self.actor.to_dict()

        key_id = self.key_id

        user_id: None | str | Unset
        if isinstance(self.user_id, Unset):
            user_id = UNSET
        else:
            user_id = self.user_id

        auth_config_id: None | str | Unset
        if isinstance(self.auth_config_id, Unset):
            auth_config_id = UNSET
        else:
            auth_config_id = self.auth_config_id

        connection_id: None | str | Unset
        if isinstance(self.connection_id, Unset):
            connection_id = UNSET
        else:
            connection_id = self.connection_id

        token_id: None | str | Unset
        if isinstance(self.token_id, Unset):
            token_id = UNSET
        else:
            token_id = self.token_id

        tool: None | str | Unset
        if isinstance(self.tool, Unset):
            tool = UNSET
        else:
            tool = self.tool

        outcome: None | str | Unset
        if isinstance(self.outcome, Unset):
            outcome = UNSET
        else:
            outcome = self.outcome

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason

        event_hash: None | str | Unset
        if isinstance(self.event_hash, Unset):
            event_hash = UNSET
        else:
            event_hash = self.event_hash

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "position": position,
                "event_id": event_id,
                "occurred_at": occurred_at,
                "workspace_id": workspace_id,
                "kind": kind,
                "aggregate": aggregate,
                "actor": actor,
                "key_id": key_id,
            }
        )
        if user_id is not UNSET:
            field_dict["user_id"] = user_id
        if auth_config_id is not UNSET:
            field_dict["auth_config_id"] = auth_config_id
        if connection_id is not UNSET:
            field_dict["connection_id"] = connection_id
        if token_id is not UNSET:
            field_dict["token_id"] = token_id
        if tool is not UNSET:
            field_dict["tool"] = tool
        if outcome is not UNSET:
            field_dict["outcome"] = outcome
        if reason is not UNSET:
            field_dict["reason"] = reason
        if event_hash is not UNSET:
            field_dict["event_hash"] = event_hash

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.audit_event_actor import AuditEventActor  # noqa: PLC0415
        from ..models.audit_event_aggregate import AuditEventAggregate  # noqa: PLC0415

        d = dict(src_dict)
        position = d.pop("position")

        event_id = d.pop("event_id")

        occurred_at = datetime.datetime.fromisoformat(d.pop("occurred_at"))

        workspace_id = d.pop("workspace_id")

        kind = d.pop("kind")

        aggregate = AuditEventAggregate.from_dict(d.pop("aggregate"))

        actor = AuditEventActor.from_dict(d.pop("actor"))

        key_id = d.pop("key_id")

        def _parse_user_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user_id = _parse_user_id(d.pop("user_id", UNSET))

        def _parse_auth_config_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        auth_config_id = _parse_auth_config_id(d.pop("auth_config_id", UNSET))

        def _parse_connection_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        connection_id = _parse_connection_id(d.pop("connection_id", UNSET))

        def _parse_token_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        token_id = _parse_token_id(d.pop("token_id", UNSET))

        def _parse_tool(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        tool = _parse_tool(d.pop("tool", UNSET))

        def _parse_outcome(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        outcome = _parse_outcome(d.pop("outcome", UNSET))

        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))

        def _parse_event_hash(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        event_hash = _parse_event_hash(d.pop("event_hash", UNSET))

        audit_event = cls(
            position=position,
            event_id=event_id,
            occurred_at=occurred_at,
            workspace_id=workspace_id,
            kind=kind,
            aggregate=aggregate,
            actor=actor,
            key_id=key_id,
            user_id=user_id,
            auth_config_id=auth_config_id,
            connection_id=connection_id,
            token_id=token_id,
            tool=tool,
            outcome=outcome,
            reason=reason,
            event_hash=event_hash,
        )

        audit_event.additional_properties = d
        return audit_event

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
