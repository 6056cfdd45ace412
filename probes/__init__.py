"""The probe agent: ICMP, STAMP and traceroute measurements, scheduler, spool and uploader."""
