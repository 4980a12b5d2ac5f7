"""The Raspberry Pi as a host: hardware probes, ``edge doctor``, installing the systemd service,
and the deploy files (unit, udev rules, config template) in deploy/."""
