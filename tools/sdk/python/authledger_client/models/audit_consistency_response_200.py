from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

if TYPE_CHECKING:
    from ..models.checkpoint import Checkpoint


T = TypeVar("T", bound="AuditConsistencyResponse200")


@_attrs_define
class AuditConsistencyResponse200:
    """
    Attributes:
        from_ (Checkpoint): A signed Merkle root over the whole log (RFC 9162 tree; leaf = sha256(envelope))
        to (Checkpoint): A signed Merkle root over the whole log (RFC 9162 tree; leaf = sha256(envelope))
        proof (list[str]):
        algorithm (str):
    """

    from_: Checkpoint
    to: Checkpoint
    proof: list[str]
    algorithm: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from_ = self.from_.to_dict()

        to = self.to.to_dict()

        proof = self.proof

        algorithm = self.algorithm

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "from": from_,
                "to": to,
                "proof": proof,
                "algorithm": algorithm,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.checkpoint import Checkpoint  # noqa: PLC0415

        d = dict(src_dict)
        from_ = Checkpoint.from_dict(d.pop("from"))

        to = Checkpoint.from_dict(d.pop("to"))

        proof = cast(list[str], d.pop("proof"))

        algorithm = d.pop("algorithm")

        audit_consistency_response_200 = cls(
            from_=from_,
            to=to,
            proof=proof,
            algorithm=algorithm,
        )

        audit_consistency_response_200.additional_properties = d
        return audit_consistency_response_200

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
