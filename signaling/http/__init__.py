"""The signaling server's HTTP side: the operator's REST API under /api/v1 and the pages (join links, operator).

One module per resource (appointments, cabins, alerts) and one for pages; `rest` holds what the API modules share
(operator authentication, JSON bodies and errors). Application keys come from signaling.keys.
"""
