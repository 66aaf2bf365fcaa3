"""Microsoft Graph v1.0 for the sandbox tenant, with Exchange's semantics, under `{base}/v1.0`.

The blueprint is in `routes`; this package file stays empty so that the tenant can import the
state modules beside it (`delta_states`, `teams_apps`, `throttling`) without a cycle.
"""
