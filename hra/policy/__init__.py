"""Policy rules downstream of the LPR: risk profiles (Besluit art. 4), the profile register with its
ratchet (art. 4.5), municipal plans within yearly capacity (art. 5) and opting out (art. 12-14)."""
