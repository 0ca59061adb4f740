"""Recommendations: the time-aware EASE + "what comes next" + trending model (``model``), the
serving rows with reasons, cold start and new titles (``serving``), viewing-history export
readers (``exports``), non-executable artifacts with a sha256 manifest (``artifact``) and the
trainer / real-time service logic the Lambda handlers call (``service``)."""
