from conftest import Tenant


def test_key_created_on_a_virtual_lock_is_applied_with_a_slot(tenant: Tenant) -> None:
    user = tenant.create_user()
    key = tenant.create_key(
        tenant.plain_lock, name="Guest", accountUserId=user, remoteAllowed=False
    )
    assert key["syncState"] == "applied"
    assert key["authId"] >= 2
    assert "operationId" not in key
