"""`echo`: the test process of OGC's executable test suite; also our round-trip probe."""
import time

from processes.base import Output, VREProcess


class EchoProcess(VREProcess):
    METADATA = {
        'version': '1.0.0',
        'id': 'echo',
        'title': {'en': 'Echo'},
        'description': {'en': 'Returns the string it is given, after an optional pause. '
                              'Used by conformance tests and to measure job round trips.'},
        'jobControlOptions': ['sync-execute', 'async-execute', 'dismiss'],
        'outputTransmission': ['value', 'reference'],
        'keywords': ['test', 'echo'],
        'links': [],
        'inputs': {
            'echoInput': {
                'title': 'String to echo', 'description': 'Any string; returned unchanged.',
                'schema': {'type': 'string'}, 'minOccurs': 1, 'maxOccurs': 1,
            },
            'pause': {
                'title': 'Pause', 'description': 'Seconds to wait before answering (0-3600).',
                'schema': {'type': 'number', 'minimum': 0, 'maximum': 3600, 'default': 0},
                'minOccurs': 0, 'maxOccurs': 1,
            },
        },
        'outputs': {
            'echoOutput': {
                'title': 'Echoed string', 'description': 'The input string.',
                'schema': {'type': 'string', 'contentMediaType': 'text/plain'},
            },
        },
        'example': {'inputs': {'echoInput': 'Hello, ocean', 'pause': 0}},
    }

    def run(self, inputs, ctx):
        pause = float(inputs.get('pause') or 0)
        end = time.monotonic() + pause
        while (left := end - time.monotonic()) > 0:
            ctx.progress(int(100 * (1 - left / pause)), 'pausing')
            time.sleep(min(left, 0.5))
        return {'echoOutput': Output(value=inputs['echoInput'], media_type='text/plain')}
