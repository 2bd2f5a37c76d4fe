from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.audit_event import AuditEvent
    from ..models.signed_event_body import SignedEventBody
    from ..models.signed_event_envelope import SignedEventEnvelope
    from ..models.signed_event_inclusion_type_1 import SignedEventInclusionType1
    from ..models.signed_event_signatures_item import SignedEventSignaturesItem


T = TypeVar("T", bound="SignedEvent")


@_attrs_define
class SignedEvent:
    """
    Attributes:
        position (int):
        event_hash (str):
        envelope (SignedEventEnvelope): The DSSE envelope exactly as stored
        body (SignedEventBody): The signed body
        signatures (list[SignedEventSignaturesItem]):
        verified (bool): Every signature verifies with a trusted key
        event (AuditEvent): One event as the audit view shows it (never a secret)
        inclusion (None | SignedEventInclusionType1): Null until a checkpoint covers the event
    """

    position: int
    event_hash: str
    envelope: SignedEventEnvelope
    body: SignedEventBody
    signatures: list[SignedEventSignaturesItem]
    verified: bool
    event: AuditEvent
    inclusion: None | SignedEventInclusionType1
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.signed_event_inclusion_type_1 import SignedEventInclusionType1  # noqa: PLC0415

        position = self.position

        event_hash = self.event_hash

        envelope = self.envelope.to_dict()

        body = self.body.to_dict()

        signatures = []
        for signatures_item_data in self.signatures:
            signatures_item = signatures_item_data.to_dict()
            signatures.append(signatures_item)

        verified = self.verified

        event = self.event.to_dict()

        inclusion: dict[str, Any] | None
        if isinstance(self.inclusion, SignedEventInclusionType1):
            inclusion = self.inclusion.to_dict()
        else:
            inclusion = self.inclusion

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "position": position,
                "event_hash": event_hash,
                "envelope": envelope,
                "body": body,
                "signatures": signatures,
                "verified": verified,
                "event": event,
                "inclusion": inclusion,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.audit_event import AuditEvent  # noqa: PLC0415
        from ..models.signed_event_body import SignedEventBody  # noqa: PLC0415
        from ..models.signed_event_envelope import SignedEventEnvelope  # noqa: PLC0415
        from ..models.signed_event_inclusion_type_1 import SignedEventInclusionType1  # noqa: PLC0415
        from ..models.signed_event_signatures_item import SignedEventSignaturesItem  # noqa: PLC0415

        d = dict(src_dict)
        position = d.pop("position")

        event_hash = d.pop("event_hash")

        envelope = SignedEventEnvelope.from_dict(d.pop("envelope"))

        body = SignedEventBody.from_dict(d.pop("body"))

        signatures = []
        _signatures = d.pop("signatures")
        for signatures_item_data in _signatures:
            signatures_item = SignedEventSignaturesItem.from_dict(signatures_item_data)

            signatures.append(signatures_item)

        verified = d.pop("verified")

        event = AuditEvent.from_dict(d.pop("event"))

        def _parse_inclusion(data: object) -> None | SignedEventInclusionType1:
            if data is None:
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                inclusion_type_1 = SignedEventInclusionType1.from_dict(data)

                return inclusion_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | SignedEventInclusionType1, data)

        inclusion = _parse_inclusion(d.pop("inclusion"))

        signed_event = cls(
            position=position,
            event_hash=event_hash,
            envelope=envelope,
            body=body,
            signatures=signatures,
            verified=verified,
            event=event,
            inclusion=inclusion,
        )

        signed_event.additional_properties = d
        return signed_event

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
