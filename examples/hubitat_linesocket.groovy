/*
 * nutbridge solar: a Hubitat driver for nutbridge's line protocol ([linesocket] listen = "0.0.0.0:61000").
 *
 * Each poll sends five queries in one message; nutbridge answers every query with one line,
 * "success: <Name> <value>" or "error: <why>", in order. eol: '\n' makes the hub hand parse() one whole
 * line at a time (without eol it may hand over several lines, or hex, so parse() copes with both).
 * A socket error or close (socketStatus) reconnects after 5, 30, 60, then every 300 s; so does a poll
 * that has had no answer for three intervals.
 */
import groovy.transform.Field
import hubitat.helper.HexUtils

@Field static final List<Integer> RETRY = [5, 30, 60, 300]
@Field static final Map<String, String> STATUS = ['7': 'generating', '6': 'normal', '3': 'standby', '2': 'syncing',
                                                  '1': 'comms lost', '0': 'fault']
@Field static final String QUERIES = 'PowerNow\nPowerToday\nbattery.charge\nStatus\nTimeStamp\n'

metadata {
    definition(name: 'nutbridge solar', namespace: 'nutbridge', author: 'nutbridge') {
        capability 'Initialize'
        capability 'Refresh'
        capability 'PowerMeter'   // power: PV watts now
        capability 'EnergyMeter'  // energy: kWh generated today
        capability 'Battery'      // battery: percent
        attribute 'status', 'string'    // generating, normal, standby, syncing, comms lost, fault
        attribute 'lastPoll', 'number'  // when the device last answered nutbridge, epoch seconds
    }
    preferences {
        input name: 'ip', type: 'text', title: 'nutbridge address', required: true
        input name: 'port', type: 'number', title: 'Port', defaultValue: 61000, required: true
        input name: 'interval', type: 'number', title: 'Poll every (seconds)', defaultValue: 60, range: '10..3600'
        input name: 'logDebug', type: 'bool', title: 'Debug logging', defaultValue: false
    }
}

void installed() { initialize() }

void updated() { initialize() }

void initialize() {
    unschedule()
    try { interfaces.rawSocket.close() } catch (ignored) { }
    try {
        interfaces.rawSocket.connect(ip, port as int, eol: '\n')
        state.lastReply = now()
        refresh()
    } catch (e) {
        log.warn "nutbridge: cannot connect to ${ip}:${port}: ${e.message}"
        retry()
    }
}

void refresh() {
    int seconds = (interval ?: 60) as int
    if (now() - (state.lastReply ?: now()) > 3000L * seconds) {
        log.warn 'nutbridge: no answer for three polls, reconnecting'
        retry()
        return
    }
    try {
        interfaces.rawSocket.sendMessage(QUERIES)
    } catch (e) {
        log.warn "nutbridge: send failed: ${e.message}"
        retry()
        return
    }
    runIn(seconds, 'refresh')
}

void parse(String message) {
    String text = message.contains(':') ? message : new String(HexUtils.hexStringToByteArray(message.trim()))
    text.split('\n').each { String line ->
        def m = line.trim() =~ /^success: (\S+) (.+)$/
        if (!m.matches()) {
            if (logDebug) log.debug "nutbridge: ${line}"  // error: no data, not available ...
            return
        }
        String name = m.group(1), value = m.group(2)
        state.lastReply = now()
        state.failures = 0
        switch (name) {
            case 'PowerNow': sendEvent(name: 'power', value: value as int, unit: 'W'); break
            case 'PowerToday': sendEvent(name: 'energy', value: (value as BigDecimal) / 1000, unit: 'kWh'); break
            case 'battery.charge': sendEvent(name: 'battery', value: Math.round(value as BigDecimal), unit: '%'); break
            case 'Status': sendEvent(name: 'status', value: STATUS[value] ?: 'fault'); break
            case 'TimeStamp': sendEvent(name: 'lastPoll', value: value as long); break
        }
    }
}

void socketStatus(String message) {
    log.warn "nutbridge: ${message}"
    retry()
}

void retry() {
    unschedule('refresh')
    int n = (state.failures ?: 0) as int
    state.failures = n + 1
    runIn(RETRY[Math.min(n, RETRY.size() - 1)], 'initialize')
}
