"""Equivariant polynomial features (Puny et al. 2023, "Equivariant Polynomials for GNNs")."""

from .basis import Polynomial, enumerate_basis

__all__ = ["Polynomial", "enumerate_basis"]
