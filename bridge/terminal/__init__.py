"""The insurance service terminal at a counter or kiosk: the national e-credential library
(face authorisation, e-credential QR, settlement notice) and the social-security card reader
(offline.md §7).  Used by face-pay and by kiosk identification alike."""
