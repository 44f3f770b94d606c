"""Which lock actions each Nuki device type knows (official action numbers)."""

from __future__ import annotations

# 0 keyturner, 3 smartdoor, 4 Smart Lock 3/4: 1 unlock, 2 lock, 3 unlatch, 4 lock 'n' go,
# 5 lock 'n' go with unlatch; 1 box: unlock; 2 opener: 1 activate rto, 2 deactivate rto,
# 3 electric strike actuation, 6 activate continuous mode, 7 deactivate continuous mode.
ACTIONS_BY_TYPE: dict[int, set[int]] = {
    0: {1, 2, 3, 4, 5},
    3: {1, 2, 3, 4, 5},
    4: {1, 2, 3, 4, 5},
    1: {1},
    2: {1, 2, 3, 6, 7},
}
