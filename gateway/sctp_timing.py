"""The vitals channel's retransmission timer: a lost reading is sent again after a fraction of a second, not one.

aiortc's SCTP keeps RFC 4960's minimum retransmission timeout of 1 s (rtcsctptransport.py:69, applied in
`_update_rto`, :1856) and starts at 3 s. A reading and a heartbeat a second are too sparse for fast retransmit (it
needs later chunks to be acknowledged), so one lost packet holds a reading, and every reading behind it on the
ordered channel, for a second or more. WebRTC's own SCTP (dcSCTP, net/dcsctp/public/dcsctp_options.h) starts at
500 ms and never goes below 220 ms, above a peer's 200 ms delayed acknowledgement. These are applied to one
association, through the one method aiortc uses to set its timeout; an aiortc without it is left as it is.
"""

from __future__ import annotations

from typing import Any, Final

RTO_INITIAL: Final = 0.5
RTO_MIN: Final = 0.22
RTO_MAX: Final = 60.0
_ALPHA: Final = 1 / 8
_BETA: Final = 1 / 4


def quicker_retransmission(sctp: Any) -> bool:
    """Give this aiortc RTCSctpTransport WebRTC's retransmission timeout bounds; whether it could be done."""
    if not callable(getattr(sctp, "_update_rto", None)) or not hasattr(sctp, "_rto"):
        return False

    def update_rto(rtt: float) -> None:
        # RFC 4960 §6.3.1, as aiortc computes it, with WebRTC's lower bound.
        if sctp._srtt is None:
            sctp._rttvar = rtt / 2
            sctp._srtt = rtt
        else:
            sctp._rttvar = (1 - _BETA) * sctp._rttvar + _BETA * abs(sctp._srtt - rtt)
            sctp._srtt = (1 - _ALPHA) * sctp._srtt + _ALPHA * rtt
        sctp._rto = max(RTO_MIN, min(sctp._srtt + 4 * sctp._rttvar, RTO_MAX))

    sctp._update_rto = update_rto
    if getattr(sctp, "_srtt", None) is None:
        sctp._rto = RTO_INITIAL
    return True
