"""Intel AMT over WS-Management: a client, typed operations, and a software AMT device."""
