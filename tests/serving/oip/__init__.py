"""The Open Inference Protocol's REST definition and what the conformance tests share."""
