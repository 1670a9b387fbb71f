"""Faults at every boundary, as one suite (issue 10, item 3): ``MATRIX`` below lists every boundary and fault
with the tests that cover it, here and in the module tests that already did (test_matrix.py checks that each
named test exists and that every test here is listed).

Each fake device speaks the real protocol over real sockets on loopback (servers.py): a raw TCP server that
crafts Modbus frames in front of the pymodbus simulator, a socat pty pair, aiohttp servers that fail on purpose
(over real TLS where the device has it), a real Mosquitto, a tmpfs that fills up, a read-only bind mount, and
children killed with SIGKILL. What is checked is what a user would check: the poll fails with a clear error,
NUT keeps the last values for the grace and then the port file is renamed to ``-nocomms``, it comes back when
the fault ends, nothing crashes, each change is logged once, no secret reaches a log (outage.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cell:
    """One boundary and fault, and the tests that cover it: pytest node ids from the repository's root, where
    ``[…]`` is the test's own parameter (a fixture's, such as the Modbus framing or the kind of full disk, is
    left out: every one of them applies)."""

    boundary: str
    fault: str
    tests: tuple[str, ...]


T, F = "tests/", "tests/faults/"
MODBUS, GW, PEER, DISK, KILL = (f"{F}test_modbus.py::", f"{F}test_gateways.py::", f"{F}test_peer_http.py::",
                                f"{F}test_disk.py::", f"{F}test_kill.py::")  # fmt: skip
CRAFTED = f"{MODBUS}test_crafted_replies_fail_the_poll_then_nocomms_then_it_comes_back"
OUTAGE = f"{GW}test_a_failing_gateway_goes_nocomms_after_the_grace_and_comes_back"
RETRY_AFTER = f"{GW}test_a_429_is_not_asked_again_before_its_retry_after"
PEER_FAILS = f"{PEER}test_a_failing_peer_is_logged_once_the_round_goes_on_and_it_works_again"
PORT_FILE_FULL = f"{DISK}test_the_port_file_keeps_its_last_values_the_error_is_logged_once_and_polling_goes_on"
DEVICES_FULL = f"{DISK}test_a_device_list_that_cannot_be_written_answers_503_and_stays_as_it_was"
TOKEN_FULL = f"{DISK}test_a_token_that_cannot_be_saved_is_kept_in_memory_with_one_warning"
DAEMON_AFTER_KILLS = f"{KILL}test_the_daemon_started_on_a_folder_of_killed_writes_goes_on_where_it_was"

MATRIX: tuple[Cell, ...] = (
    # --- the Tracer over Modbus TCP, and RTU frames over TCP (a transparent RS-485 gateway) ---
    Cell("Modbus", "timeout (a silent device)", (
        f"{T}devices/tracer/test_source.py::test_silent_device_times_out_and_reconnects",
        f"{T}test_monitor.py::test_a_glitch_rides_through_the_grace_and_a_loss_does_not",
        f"{T}test_monitor.py::test_a_dead_device_never_holds_a_poll_past_its_deadline")),
    Cell("Modbus", "garbage: random bytes", (
        f"{T}devices/tracer/test_source.py::test_garbage_bytes_are_an_error_not_a_reading", f"{CRAFTED}[noise]")),
    Cell("Modbus", "garbage: a well-formed reply to another function, or a register short", (
        f"{CRAFTED}[wrong-function]", f"{CRAFTED}[short-count]",
        f"{MODBUS}test_a_reply_to_the_wrong_function_is_no_reading")),
    Cell("Modbus", "partial frame (the rest late, or the connection closed)", (
        f"{CRAFTED}[partial]", f"{CRAFTED}[partial-close]",
        f"{MODBUS}test_the_late_half_of_a_frame_is_never_read_as_the_next_answer")),
    Cell("Modbus", "a wrong device id answering", (
        f"{CRAFTED}[wrong-device]", f"{MODBUS}test_another_device_answering_first_is_never_read_as_ours",
        f"{T}devices/tracer/test_source.py::test_unknown_device_id_is_a_source_error")),
    Cell("Modbus", "exception reply, implausible value", (
        f"{T}devices/tracer/test_source.py::test_exception_reply_is_a_protocol_error_and_drops_the_link",
        f"{T}devices/tracer/test_source.py::test_protocol_error_on_implausible_charge")),
    Cell("Modbus", "server gone, nothing listening", (
        f"{T}devices/tracer/test_source.py::test_server_killed_mid_session_then_back",
        f"{T}devices/tracer/test_source.py::test_nothing_listening_is_a_source_error")),
    # --- the serial line ---
    Cell("serial (socat pty)", "the device vanishes, then a new one appears at the same path", (
        f"{MODBUS}test_a_pulled_serial_adapter_goes_nocomms_and_a_new_pty_at_the_same_path_brings_it_back",
        f"{T}devices/tracer/test_source.py::test_serial_device_vanishes_and_comes_back")),
    Cell("serial (socat pty)", "no such device", (
        f"{T}devices/tracer/test_source.py::test_missing_serial_device_is_a_source_error",)),
    # --- the Enphase gateway (HTTPS) and its cloud ---
    Cell("Enphase gateway", "401", (
        f"{OUTAGE}[envoy-401]",
        f"{T}devices/enphase/test_source.py::test_a_401_renews_the_token_once_then_fails_the_poll")),
    Cell("Enphase gateway", "429 (Retry-After honoured)", (f"{OUTAGE}[envoy-429]", f"{RETRY_AFTER}[envoy-120-120]")),
    Cell("Enphase gateway", "500, a hang", (
        f"{OUTAGE}[envoy-500]",
        f"{T}devices/enphase/test_source.py::test_a_500_or_a_hang_is_a_failed_poll_and_the_next_one_works")),
    Cell("Enphase gateway", "slow body", (f"{OUTAGE}[envoy-slow]",)),
    Cell("Enphase gateway", "connection reset, before or inside the body", (
        f"{OUTAGE}[envoy-reset]", f"{OUTAGE}[envoy-reset-body]")),
    Cell("Enphase gateway", "TLS: plain HTTP on the HTTPS port", (f"{OUTAGE}[envoy-tls]",)),
    Cell("Enphase gateway", "TLS: an expired, untrusted certificate (accepted: self-signed by design)", (
        f"{GW}test_a_gateway_with_an_expired_untrusted_certificate_is_read_as_enphase_monitor_reads_it",)),
    Cell("Enphase gateway", "garbage answers", (
        f"{T}devices/enphase/test_source.py::test_garbage_is_a_failed_poll_not_data",)),
    Cell("Enphase cloud", "TLS: expired or untrusted certificate", (
        f"{GW}test_the_enphase_cloud_with_an_expired_certificate_is_a_failed_poll_without_secrets",
        f"{T}devices/enphase/test_token.py::test_tls_is_verified_by_default")),
    Cell("Enphase cloud", "login refused, down, 5xx", (
        f"{T}devices/enphase/test_source.py::test_a_refused_login_is_a_failed_poll_and_never_leaks_the_password",
        f"{T}devices/enphase/test_token.py::test_a_server_that_is_down_fails_quickly_then_waits",
        f"{T}devices/enphase/test_token.py::test_entrez_failing_once_is_retried",
        f"{T}devices/enphase/test_token.py::test_failures_back_off_between_calls_growing_to_15_minutes")),
    Cell("Enphase cloud", "429 (Retry-After honoured, at least the backoff)", (
        f"{T}devices/enphase/test_token.py::test_a_429_login_is_not_asked_again_before_its_retry_after",)),
    # --- the pyPowerwall proxy (HTTP, or HTTPS behind a reverse proxy) ---
    Cell("Powerwall proxy", "401", (f"{OUTAGE}[powerwall-401]",)),
    Cell("Powerwall proxy", "429 (Retry-After honoured)", (
        f"{OUTAGE}[powerwall-429]", f"{RETRY_AFTER}[powerwall-http-date-90]")),
    Cell("Powerwall proxy", "500 and 18 other bad answers", (
        f"{OUTAGE}[powerwall-500]",
        f"{T}devices/powerwall/test_source.py::test_a_bad_answer_is_a_failed_poll_never_data")),
    Cell("Powerwall proxy", "the real pypowerwall-server without its gateway", (
        f"{T}devices/powerwall/test_proxy.py::test_the_real_proxy_without_its_gateway_is_no_data",)),
    Cell("Powerwall proxy", "slow body, a hang", (
        f"{OUTAGE}[powerwall-slow]",
        f"{T}devices/powerwall/test_source.py::test_a_hanging_proxy_fails_within_the_timeout")),
    Cell("Powerwall proxy", "connection reset, before or inside the body", (
        f"{OUTAGE}[powerwall-reset]", f"{OUTAGE}[powerwall-reset-body]")),
    Cell("Powerwall proxy", "TLS: the reverse proxy's certificate expired", (f"{OUTAGE}[powerwall-tls]",)),
    Cell("Powerwall proxy", "nothing listening", (
        f"{T}devices/powerwall/test_source.py::test_a_closed_port_is_a_failed_poll",)),
    # --- the peers (plain HTTP, as v1: no TLS to fail) ---
    Cell("peers", "401, 500, slow body, reset before or inside the body", (
        f"{PEER_FAILS}[401]", f"{PEER_FAILS}[500]", f"{PEER_FAILS}[slow]", f"{PEER_FAILS}[reset]",
        f"{PEER_FAILS}[reset-body]")),
    Cell("peers", "429 (Retry-After honoured; the announcer skips the peer)", (
        f"{PEER}test_a_peer_answering_429_is_skipped_until_its_retry_after",)),
    Cell("peers", "wrong network key, nothing listening", (
        f"{T}peers/test_peers.py::test_a_wrong_key_or_dead_peer_is_logged_once_and_the_round_goes_on",)),
    Cell("peers", "an answer over the cap", (f"{T}peers/test_peers.py::test_an_answer_over_the_cap_is_refused",)),
    # --- MQTT ---
    Cell("MQTT broker", "restart (SIGTERM)", (f"{T}feeds/test_mqtt.py::test_reconnects_after_a_broker_restart",)),
    Cell("MQTT broker", "killed (SIGKILL) and restarted", (
        f"{F}test_broker.py::test_after_the_broker_is_killed_and_restarted_the_feed_publishes_everything_again_retained",
    )),
    Cell("MQTT broker", "down from the start", (f"{T}feeds/test_mqtt.py::test_update_never_waits_for_the_broker",)),
    Cell("MQTT broker", "wrong password, untrusted certificate", (
        f"{T}feeds/test_mqtt.py::test_password_from_the_url_never_logged",
        f"{T}feeds/test_mqtt.py::test_mqtts_verifies_the_broker")),
    # --- the files ---
    Cell("port file", "disk full, read-only folder", (
        PORT_FILE_FULL, f"{T}nut/test_portfile.py::test_full_disk_keeps_the_old_file",
        f"{T}nut/test_portfile.py::test_unwritable_folder_keeps_the_old_file")),
    Cell("port file", "kill -9 inside a write or a rename (100 times)", (
        f"{KILL}test_kill_9_during_port_file_writes_and_renames_leaves_it_whole", DAEMON_AFTER_KILLS,
        f"{T}nut/test_portfile.py::test_stale_temp_files_of_our_naming_are_removed_at_start")),
    Cell("device list", "disk full, read-only folder", (
        DEVICES_FULL, f"{DISK}test_held_stamps_that_cannot_be_written_stay_in_memory_with_one_error")),
    Cell("device list", "kill -9 inside a write (100 times)", (
        f"{KILL}test_kill_9_during_device_list_posts_leaves_it_whole", DAEMON_AFTER_KILLS)),
    Cell("device list", "a file that is not a list", (f"{T}peers/test_devices.py::test_a_bad_file_is_never_reset",)),
    Cell("token cache", "disk full, read-only folder", (TOKEN_FULL,)),
    Cell("token cache", "kill -9 inside a save (100 times)", (
        f"{KILL}test_kill_9_during_token_saves_leaves_it_whole_and_the_next_start_reads_it",)),
    Cell("token cache", "an unsafe or unusable file", (
        f"{T}devices/enphase/test_token.py::test_an_unsafe_token_folder_is_refused",
        f"{T}devices/enphase/test_token.py::test_an_unusable_cached_file_is_replaced_by_a_fresh_token")),
    # --- the sinks ---
    Cell("sinks", "a sink that fails, hangs or falls behind", (
        f"{T}test_monitor.py::test_a_failing_sink_is_logged_once_and_polling_goes_on",
        f"{T}test_monitor.py::test_a_hung_sink_times_out_and_recovers",
        f"{T}test_monitor.py::test_a_slow_sink_never_delays_the_poll")),
)  # fmt: skip
