from types import SimpleNamespace

from autoanim.adapters.credentials import Credentials, resolve_credentials


def test_python310_context_credentials_win_over_the_environment():
    context = SimpleNamespace(
        credentials=SimpleNamespace(
            access_key_id="LTAIctx", access_key_secret="ctx-secret", security_token="ctx-token"
        )
    )
    environ = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIenv", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret"}
    assert resolve_credentials(context, environ) == Credentials("LTAIctx", "ctx-secret", "ctx-token")


def test_python312_has_no_context_credentials_so_the_environment_is_used():
    context = SimpleNamespace(request_id="r", region="cn-hangzhou")
    environ = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIenv",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret",
        "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token",
    }
    assert resolve_credentials(context, environ) == Credentials("LTAIenv", "env-secret", "env-token")


def test_access_key_without_token_and_nothing_at_all():
    environ = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIenv", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret"}
    assert resolve_credentials(None, environ) == Credentials("LTAIenv", "env-secret", None)
    assert resolve_credentials(None, {"ALIBABA_CLOUD_ACCESS_KEY_ID": "only-the-id"}) is None
    assert resolve_credentials(SimpleNamespace(credentials=None), {}) is None


def test_repr_and_str_never_show_the_secret_or_token_and_mask_the_id(sts):
    credentials = Credentials("LTAI5tWireTestKeyId", sts.access_key_secret, sts.security_token)
    for shown in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert sts.access_key_secret not in shown and sts.security_token not in shown
        assert "LTAI5tWireTestKeyId" not in shown and "LTAI" in shown
