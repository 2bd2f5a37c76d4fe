from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="AuditCosignResponse201")


@_attrs_define
class AuditCosignResponse201:
    """
    Attributes:
        checkpoint_sequence (int):
        tree_size (int):
        witness_name (str):
        witness_key (str):
        timestamp (int):
        position (int):
    """

    checkpoint_sequence: int
    tree_size: int
    witness_name: str
    witness_key: str
    timestamp: int
    position: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        checkpoint_sequence = self.checkpoint_sequence

        tree_size = self.tree_size

        witness_name = self.witness_name

        witness_key = self.witness_key

        timestamp = self.timestamp

        position = self.position

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "checkpoint_sequence": checkpoint_sequence,
                "tree_size": tree_size,
                "witness_name": witness_name,
                "witness_key": witness_key,
                "timestamp": timestamp,
                "position": position,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        checkpoint_sequence = d.pop("checkpoint_sequence")

        tree_size = d.pop("tree_size")

        witness_name = d.pop("witness_name")

        witness_key = d.pop("witness_key")

        timestamp = d.pop("timestamp")

        position = d.pop("position")

        audit_cosign_response_201 = cls(
            checkpoint_sequence=checkpoint_sequence,
            tree_size=tree_size,
            witness_name=witness_name,
            witness_key=witness_key,
            timestamp=timestamp,
            position=position,
        )

        audit_cosign_response_201.additional_properties = d
        return audit_cosign_response_201

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
