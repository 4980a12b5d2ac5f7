"""Captures kept for review: the archive on disk (:mod:`.store`), the daemon's capture desk
(:mod:`.desk`) and the export of reviewed captures as a training dataset (:mod:`.export`)."""
