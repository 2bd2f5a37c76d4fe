from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.checkpoint import Checkpoint


T = TypeVar("T", bound="SignedEventInclusionType1")


@_attrs_define
class SignedEventInclusionType1:
    """
    Attributes:
        checkpoint (Checkpoint | Unset): A signed Merkle root over the whole log (RFC 9162 tree; leaf =
            sha256(envelope))
        leaf_index (int | Unset):
        proof (list[str] | Unset):
        algorithm (str | Unset):
    """

    checkpoint: Checkpoint | Unset = UNSET
    leaf_index: int | Unset = UNSET
    proof: list[str] | Unset = UNSET
    algorithm: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        checkpoint: dict[str, Any] | Unset = UNSET
        if not isinstance(self.checkpoint, Unset):
            checkpoint = self.checkpoint.to_dict()

        leaf_index = self.leaf_index

        proof: list[str] | Unset = UNSET
        if not isinstance(self.proof, Unset):
            proof = self.proof

        algorithm = self.algorithm

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if checkpoint is not UNSET:
            field_dict["checkpoint"] = checkpoint
        if leaf_index is not UNSET:
            field_dict["leaf_index"] = leaf_index
        if proof is not UNSET:
            field_dict["proof"] = proof
        if algorithm is not UNSET:
            field_dict["algorithm"] = algorithm

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.checkpoint import Checkpoint  # noqa: PLC0415

        d = dict(src_dict)
        _checkpoint = d.pop("checkpoint", UNSET)
        checkpoint: Checkpoint | Unset
        if isinstance(_checkpoint, Unset):
            checkpoint = UNSET
        else:
            checkpoint = Checkpoint.from_dict(_checkpoint)

        leaf_index = d.pop("leaf_index", UNSET)

        proof = cast(list[str], d.pop("proof", UNSET))

        algorithm = d.pop("algorithm", UNSET)

        signed_event_inclusion_type_1 = cls(
            checkpoint=checkpoint,
            leaf_index=leaf_index,
            proof=proof,
            algorithm=algorithm,
        )

        signed_event_inclusion_type_1.additional_properties = d
        return signed_event_inclusion_type_1

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
