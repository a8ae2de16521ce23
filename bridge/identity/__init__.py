"""Identity before the payment (issue 13): look the patient up, let them choose an
insurance, write the chosen identity back to the HIS; kiosk identification, registration
and the registration fee.  The index of modules and kinds is flows.py."""
