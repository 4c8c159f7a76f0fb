# The interface in English. Every key here has its Russian twin in
# ../ru/main.ftl, in the same order.

## Page shell
site-description = Recognise actors in photos and read today's horoscope, served by Rust models.
nav-pages = Pages
nav-actors = Actors
nav-horoscope = Horoscope
nav-models = Models
nav-pipeline = Pipeline
footer-api = REST API (OpenAPI)
language-switch = Language
theme-to-light = Switch to the light theme
theme-to-dark = Switch to the dark theme
theme-dark = Dark theme
not-found-title = Not found
not-found-heading = Page not found
not-found-try = There is no page here. Try
not-found-actors = actor recognition
not-found-or = or
not-found-horoscope = the horoscope

## Dates
month-1 = Jan
month-2 = Feb
month-3 = Mar
month-4 = Apr
month-5 = May
month-6 = Jun
month-7 = Jul
month-8 = Aug
month-9 = Sep
month-10 = Oct
month-11 = Nov
month-12 = Dec
sign-dates = { $from-month } { $from-day } – { $to-month } { $to-day }

## Horoscope page
horoscope-title = Horoscope
horoscope-heading = Your horoscope
horoscope-intro = Pick a sign and a day; the served language model writes the horoscope as you watch.
horoscope-sign = Zodiac sign
horoscope-language = Language of the horoscope
horoscope-date = Date
horoscope-advanced = Advanced
horoscope-temperature = Temperature
horoscope-top-p = Top-p
horoscope-seed = Seed
horoscope-seed-placeholder = the day's horoscope
horoscope-generate = Generate
horoscope-writing = Writing…
horoscope-stop = Stop
horoscope-result = Result
horoscope-idle = Pick your sign, then Generate.
horoscope-stopped = Stopped. Generate again for a new horoscope.
horoscope-meta = { $date } · { $tokens } tokens · { $speed } tokens/s · { $model }
horoscope-no-event-stream = This browser can't open event streams.
horoscope-unreadable = The finished horoscope could not be read.
queue-ahead = { $ahead ->
    [0] next in line
    [one] 1 request ahead
   *[other] { $ahead } requests ahead
}
queue-waiting = Waiting for a turn: { $ahead }.
queue-waiting-about = Waiting for a turn: { $ahead }, about { $seconds } s.

## Actors page
actors-title = Actors
actors-heading = Who is in this photo?
actors-intro = Upload a photo and the served model names the actors in it, with its confidence.
actors-uploaded = The uploaded photo { $name }
actors-drop = Drop a photo here
actors-drop-more = or click to choose one · paste with Ctrl+V
actors-camera = Take a photo with the camera
actors-result = Result
actors-idle = Choose a photo or an example to see who is in it.
actors-working = Recognising…
actors-faces = { $faces ->
    [one] 1 face found: it has its own box and label on the photo.
   *[other] { $faces } faces found: each has its own box and label on the photo.
}
actors-examples = Examples
actors-try = Try { $name }
notice-actors = No actor recognition model is loaded on this server yet, so results can't be shown; your input is still checked.
notice-horoscope = No horoscope model is loaded on this server yet, so results can't be shown; your input is still checked.

## Flagging
flag-open = Flag this result
flag-sent = Flagged for review, thank you
flag-reason = What is wrong with this result?
flag-reason-example = e.g. wrong actor, text cut off
flag-label = Who is it really? (optional; it helps us test the next model)
flag-label-example = e.g. Keanu Reeves
flag-send = Send flag

## Models page
loading = Loading…
models-title = Models
models-heading = Served models
models-intro = The model versions answering on this server, their source and their evaluation metrics.
models-unavailable = The model list could not be loaded: { $reason }
models-none = No model is loaded yet
models-none-why = This server has no actor or horoscope model. Until one is loaded, recognition and generation answer that no model is loaded rather than guess.
model-task = Task
model-architecture = Architecture
model-source = Source
model-language = Language
model-labels = Labels
model-evaluation = Evaluation
task-classifier = actor recognition (classifier)
task-gallery = actor recognition (face gallery)
task-horoscope = horoscope generation
admin-token = Admin token
upload-title = Upload an actor model (admin)
upload-help = A model.pth as torch.save wrote it (state_dict, checkpoint or whole model), or safetensors. It is served from the next request on; a file that can't be served is refused and the current model stays.
upload-weights = Weights
upload-labels = Labels, in class order (one per line or comma-separated)
upload-architecture-read = read it from the weights
upload-send = Upload and serve
upload-sending = Uploading…
upload-no-file = Choose a weights file first.
upload-served = Now serving { $version } ({ $architecture }, { $labels } labels).

## Pipeline page
pipeline-title = Pipeline
pipeline-heading = Pipeline runs
pipeline-intro = Each run collects horoscopes, processes them and retrains the horoscope model on them, and retrains the actor model when its photos changed; a new version is served only when it beats the served one. The same steps run as
pipeline-intro-commands = subcommands from cron or Airflow.
pipeline-no-runs = No run yet: the schedule is off, or its first time hasn't come.
pipeline-started-by = Started by { $trigger }
pipeline-step = Step
pipeline-status = Status
pipeline-tries = Tries
pipeline-time = Time
pipeline-run-started = Run { $id } started; it goes on in the background.
pipeline-start = Start a run now (admin)
pipeline-run = Run the pipeline
monitoring-heading = The served model's confidence
monitoring-summary = { $model }: { $answers } answers in the last { $hours } h, mean top score { $mean }. Answers per tenth of the top score; a model whose answers slide left is drifting and needs new photos.
monitoring-no-answers = { $model }: no answer in the last { $hours } h.
monitoring-no-model = No actor model is served.
monitoring-not-logged = This server keeps no prediction log.
status-waiting = waiting
status-running = running
status-succeeded = succeeded
status-failed = failed
status-skipped = skipped

## Running in the browser
run-in-browser = Run in my browser
run-in-browser-hint = The model is downloaded once and runs on this device: the photo or the request never leaves it.
runs-in-browser-only = The model runs in your browser: nothing you give it leaves this device.
browser-cannot-run-models = This browser can't run the models (it lacks WebAssembly SIMD or workers): try a current Chrome, Firefox or Safari.
model-download = Downloading the model: { $loaded } of { $total } MB (once: it is kept in the browser).
ran-on-server = The server answered instead: { $reason }
models-in-browser = Loaded in this browser
own-model-title = Try your own model in this browser
own-model-help = Pick your model.pth or model.safetensors with its config.json or labels.txt: it is loaded here as the server would load it, nothing is uploaded, and the Actors page answers with it in this browser.
own-model-files = Model files
own-model-load = Load in this browser
own-model-loaded = Loaded { $name } ({ $labels } labels): the Actors page answers with it now, in this browser.

api-title = API
api-heading = Use via API
api-intro = Every endpoint of this server, with a request ready to run against it. The OpenAPI document is at
api-snippet-language = Language of the examples
api-unavailable = The API description could not be loaded: { $reason }
api-admin = admin token
api-answers = Answers
api-input = Input
api-input-where = Sent as
api-input-what = What it is
api-required = required
api-place-query = query parameter
api-place-json = JSON field
api-place-form = form field
api-place-file = form file
