"""The host's payment security: terminal master keys, sign-on key exchange, MACs on requests
and responses, PIN checks and DUKPT (docs/keys-and-macs.md).

Modules: :mod:`~host.security_config` (``[security]`` of the config),
:mod:`~host.security.kek` (the key that seals stored TMKs), :mod:`~host.security.tmk_store`
(TMKs from the config or generated), :mod:`~host.security.sessions` (working keys in memory),
:mod:`~host.security.pin_tries` (wrong PINs per card), :mod:`~host.security.tables`,
:mod:`~host.security.gate` (the checks the service and server call) and
:mod:`~host.keys_cli` (``poslab-host keys``). The primitives are
:mod:`protocol.security`'s.
"""
