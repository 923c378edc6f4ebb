"""Papers in the cabin: documents the professional sends (shown, then printed on the citizen's press) and documents
the citizen hands back (scanned or photographed), over the call's `documents` data channel, peer to peer.

`transfer` is the channel's wire protocol (pure), `check` tells a document the cabin can show and print from a file
it must refuse (pure).
"""
