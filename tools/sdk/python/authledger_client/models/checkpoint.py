from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="Checkpoint")


@_attrs_define
class Checkpoint:
    """A signed Merkle root over the whole log (RFC 9162 tree; leaf = sha256(envelope))

    Attributes:
        sequence (int | Unset):
        from_position (int | Unset):
        to_position (int | Unset):
        count (int | Unset):
        tree_size (int | Unset):
        merkle_root (str | Unset):
        previous_tree_size (int | None | Unset):
        previous_root (None | str | Unset):
        position (int | Unset): The log position of the checkpoint event
        event_id (str | Unset):
        signed_at (datetime.datetime | Unset):
        key_id (str | Unset):
        envelope_hash (str | Unset):
        note (None | str | Unset): The checkpoint as a C2SP signed note (tlog-checkpoint, signed by the log key;
            schemas/README.md §7c); null for checkpoints written before notes existed
    """

    sequence: int | Unset = UNSET
    from_position: int | Unset = UNSET
    to_position: int | Unset = UNSET
    count: int | Unset = UNSET
    tree_size: int | Unset = UNSET
    merkle_root: str | Unset = UNSET
    previous_tree_size: int | None | Unset = UNSET
    previous_root: None | str | Unset = UNSET
    position: int | Unset = UNSET
    event_id: str | Unset = UNSET
    signed_at: datetime.datetime | Unset = UNSET
    key_id: str | Unset = UNSET
    envelope_hash: str | Unset = UNSET
    note: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        sequence = self.sequence

        from_position = self.from_position

        to_position = self.to_position

        count = self.count

        tree_size = self.tree_size

        merkle_root = self.merkle_root

        previous_tree_size: int | None | Unset
        if isinstance(self.previous_tree_size, Unset):
            previous_tree_size = UNSET
        else:
            previous_tree_size = self.previous_tree_size

        previous_root: None | str | Unset
        if isinstance(self.previous_root, Unset):
            previous_root = UNSET
        else:
            previous_root = self.previous_root

        position = self.position

        event_id = self.event_id

        signed_at: str | Unset = UNSET
        if not isinstance(self.signed_at, Unset):
            signed_at = self.signed_at.isoformat()

        key_id = self.key_id

        envelope_hash = self.envelope_hash

        note: None | str | Unset
        if isinstance(self.note, Unset):
            note = UNSET
        else:
            note = self.note

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if sequence is not UNSET:
            field_dict["sequence"] = sequence
        if from_position is not UNSET:
            field_dict["from_position"] = from_position
        if to_position is not UNSET:
            field_dict["to_position"] = to_position
        if count is not UNSET:
            field_dict["count"] = count
        if tree_size is not UNSET:
            field_dict["tree_size"] = tree_size
        if merkle_root is not UNSET:
            field_dict["merkle_root"] = merkle_root
        if previous_tree_size is not UNSET:
            field_dict["previous_tree_size"] = previous_tree_size
        if previous_root is not UNSET:
            field_dict["previous_root"] = previous_root
        if position is not UNSET:
            field_dict["position"] = position
        if event_id is not UNSET:
            field_dict["event_id"] = event_id
        if signed_at is not UNSET:
            field_dict["signed_at"] = signed_at
        if key_id is not UNSET:
            field_dict["key_id"] = key_id
        if envelope_hash is not UNSET:
            field_dict["envelope_hash"] = envelope_hash
        if note is not UNSET:
            field_dict["note"] = note

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        sequence = d.pop("sequence", UNSET)

        from_position = d.pop("from_position", UNSET)

        to_position = d.pop("to_position", UNSET)

        count = d.pop("count", UNSET)

        tree_size = d.pop("tree_size", UNSET)

        merkle_root = d.pop("merkle_root", UNSET)

        def _parse_previous_tree_size(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        previous_tree_size = _parse_previous_tree_size(d.pop("previous_tree_size", UNSET))

        def _parse_previous_root(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        previous_root = _parse_previous_root(d.pop("previous_root", UNSET))

        position = d.pop("position", UNSET)

        event_id = d.pop("event_id", UNSET)

        _signed_at = d.pop("signed_at", UNSET)
        signed_at: datetime.datetime | Unset
        if isinstance(_signed_at, Unset):
            signed_at = UNSET
        else:
            signed_at = datetime.datetime.fromisoformat(_signed_at)

        key_id = d.pop("key_id", UNSET)

        envelope_hash = d.pop("envelope_hash", UNSET)

        def _parse_note(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        note = _parse_note(d.pop("note", UNSET))

        checkpoint = cls(
            sequence=sequence,
            from_position=from_position,
            to_position=to_position,
            count=count,
            tree_size=tree_size,
            merkle_root=merkle_root,
            previous_tree_size=previous_tree_size,
            previous_root=previous_root,
            position=position,
            event_id=event_id,
            signed_at=signed_at,
            key_id=key_id,
            envelope_hash=envelope_hash,
            note=note,
        )

        checkpoint.additional_properties = d
        return checkpoint

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
