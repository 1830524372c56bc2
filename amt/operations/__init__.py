"""Typed AMT operations over ``amt.wsman.WsmanClient``, one module per AMT service."""
