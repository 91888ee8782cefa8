"""Entra ID stand-in: discovery, JWKS, authorize (demo-user picker), token, sandbox minting."""

from dev.sandbox.entra.standin import EntraStandIn

__all__ = ["EntraStandIn"]
