"""Pushing task changes to WebSocket connections: the subscribe handshake, frames, the @connections poster, fan-out."""
