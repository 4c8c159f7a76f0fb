# Интерфейс по-русски. У каждого ключа есть английский двойник в
# ../en/main.ftl, в том же порядке.

## Page shell
site-description = Узнаёт актёров на фотографиях и пишет гороскоп на сегодня; модели работают на Rust.
nav-pages = Страницы
nav-actors = Актёры
nav-horoscope = Гороскоп
nav-models = Модели
nav-pipeline = Конвейер
footer-api = REST API (OpenAPI)
language-switch = Язык
theme-to-light = Включить светлую тему
theme-to-dark = Включить тёмную тему
theme-dark = Тёмная тема
not-found-title = Не найдено
not-found-heading = Страница не найдена
not-found-try = Здесь ничего нет. Попробуйте
not-found-actors = распознавание актёров
not-found-or = или
not-found-horoscope = гороскоп

## Dates
month-1 = января
month-2 = февраля
month-3 = марта
month-4 = апреля
month-5 = мая
month-6 = июня
month-7 = июля
month-8 = августа
month-9 = сентября
month-10 = октября
month-11 = ноября
month-12 = декабря
sign-dates = { $from-day } { $from-month } – { $to-day } { $to-month }

## Horoscope page
horoscope-title = Гороскоп
horoscope-heading = Ваш гороскоп
horoscope-intro = Выберите знак и день: языковая модель пишет гороскоп у вас на глазах.
horoscope-sign = Знак зодиака
horoscope-language = Язык гороскопа
horoscope-date = Дата
horoscope-advanced = Дополнительно
horoscope-temperature = Температура
horoscope-top-p = Top-p
horoscope-seed = Зерно
horoscope-seed-placeholder = гороскоп дня
horoscope-generate = Написать
horoscope-writing = Пишу…
horoscope-stop = Стоп
horoscope-result = Результат
horoscope-idle = Выберите знак и нажмите «Написать».
horoscope-stopped = Остановлено. Нажмите «Написать» для нового гороскопа.
horoscope-meta = { $date } · токенов: { $tokens } · { $speed } токенов/с · { $model }
horoscope-no-event-stream = Этот браузер не умеет открывать потоки событий.
horoscope-unreadable = Готовый гороскоп не удалось прочитать.
queue-ahead = { $ahead ->
    [0] вы следующий
    [one] впереди { $ahead } запрос
    [few] впереди { $ahead } запроса
   *[other] впереди { $ahead } запросов
}
queue-waiting = Ожидание очереди: { $ahead }.
queue-waiting-about = Ожидание очереди: { $ahead }, около { $seconds } с.

## Actors page
actors-title = Актёры
actors-heading = Кто на этой фотографии?
actors-intro = Загрузите фотографию, и модель назовёт актёров на ней и свою уверенность.
actors-uploaded = Загруженная фотография { $name }
actors-drop = Перетащите фотографию сюда
actors-drop-more = или нажмите, чтобы выбрать · вставка по Ctrl+V
actors-camera = Снять камерой
actors-result = Результат
actors-idle = Выберите фотографию или пример, чтобы узнать, кто на ней.
actors-working = Распознаю…
actors-faces = { $faces ->
    [one] Найдено { $faces } лицо: у каждого своя рамка и подпись на фотографии.
    [few] Найдено { $faces } лица: у каждого своя рамка и подпись на фотографии.
   *[other] Найдено { $faces } лиц: у каждого своя рамка и подпись на фотографии.
}
actors-examples = Примеры
actors-try = Попробовать { $name }
notice-actors = На этом сервере ещё нет модели распознавания актёров, поэтому результатов не будет; фотография всё равно проверяется.
notice-horoscope = На этом сервере ещё нет модели гороскопов, поэтому результатов не будет; запрос всё равно проверяется.

## Flagging
flag-open = Пожаловаться на результат
flag-sent = Отправлено на проверку, спасибо
flag-reason = Что не так с этим результатом?
flag-reason-example = например, не тот актёр, текст оборван
flag-label = Кто это на самом деле? (необязательно; это поможет проверить следующую модель)
flag-label-example = например, Киану Ривз
flag-send = Отправить

## Models page
loading = Загрузка…
models-title = Модели
models-heading = Работающие модели
models-intro = Версии моделей, которые отвечают на этом сервере, откуда они и как их оценили.
models-unavailable = Список моделей не загрузился: { $reason }
models-none = Ни одной модели пока нет
models-none-why = На этом сервере нет ни модели актёров, ни модели гороскопов. Пока их нет, распознавание и генерация честно отвечают, что модели нет, а не угадывают.
model-task = Задача
model-architecture = Архитектура
model-source = Источник
model-language = Язык
model-labels = Метки
model-evaluation = Оценка
task-classifier = распознавание актёров (классификатор)
task-gallery = распознавание актёров (галерея лиц)
task-horoscope = генерация гороскопов
admin-token = Токен администратора
upload-title = Загрузить модель актёров (для администратора)
upload-help = Файл model.pth, как его записал torch.save (state_dict, чекпоинт или вся модель), или safetensors. Модель работает со следующего запроса; файл, который нельзя обслужить, отклоняется, и остаётся прежняя модель.
upload-weights = Веса
upload-labels = Метки в порядке классов (по одной в строке или через запятую)
upload-architecture-read = определить по весам
upload-send = Загрузить и включить
upload-sending = Загружаю…
upload-no-file = Сначала выберите файл с весами.
upload-served = Теперь работает { $version } ({ $architecture }, меток: { $labels }).

## Pipeline page
pipeline-title = Конвейер
pipeline-heading = Запуски конвейера
pipeline-intro = Каждый запуск собирает гороскопы, обрабатывает их и дообучает на них модель гороскопов, а модель актёров — когда изменились её фотографии; новая версия включается, только если она лучше работающей. Те же шаги запускаются как
pipeline-intro-commands = подкоманды из cron или Airflow.
pipeline-no-runs = Запусков пока нет: расписание выключено или его время ещё не пришло.
pipeline-started-by = Запустил: { $trigger }
pipeline-step = Шаг
pipeline-status = Состояние
pipeline-tries = Попытки
pipeline-time = Время
pipeline-run-started = Запуск { $id } начат и идёт в фоне.
pipeline-start = Запустить сейчас (для администратора)
pipeline-run = Запустить конвейер
monitoring-heading = Уверенность обслуживаемой модели
monitoring-summary = { $model }: ответов за последние { $hours } ч: { $answers }, средняя уверенность { $mean }. Ответы по десятым долям уверенности; если они смещаются влево, модель устаревает и ей нужны новые фото.
monitoring-no-answers = { $model }: за последние { $hours } ч ответов не было.
monitoring-no-model = Модель распознавания актёров не загружена.
monitoring-not-logged = Этот сервер не ведёт журнал ответов.
status-waiting = ждёт
status-running = идёт
status-succeeded = выполнен
status-failed = ошибка
status-skipped = пропущен

## Running in the browser
run-in-browser = Запустить в моём браузере
run-in-browser-hint = Модель скачивается один раз и работает на этом устройстве: фото и запрос никуда не уходят.
runs-in-browser-only = Модель работает в вашем браузере: ничто из того, что вы ей даёте, не покидает это устройство.
browser-cannot-run-models = Этот браузер не может запустить модели (нет WebAssembly SIMD или воркеров): откройте страницу в свежем Chrome, Firefox или Safari.
model-download = Скачиваю модель: { $loaded } из { $total } МБ (один раз: она сохранится в браузере).
ran-on-server = Вместо браузера ответил сервер: { $reason }
models-in-browser = Загружены в этом браузере
own-model-title = Попробовать свою модель в этом браузере
own-model-help = Выберите model.pth или model.safetensors вместе с config.json или labels.txt: модель загрузится здесь так же, как её загрузил бы сервер, ничего не отправляется, и страница «Актёры» будет отвечать ею в этом браузере.
own-model-files = Файлы модели
own-model-load = Загрузить в браузер
own-model-loaded = Загружена { $name } (меток: { $labels }): страница «Актёры» теперь отвечает ею в этом браузере.

api-title = API
api-heading = Работа через API
api-intro = Все адреса этого сервера и готовые к запуску запросы к ним. Документ OpenAPI лежит по адресу
api-snippet-language = Язык примеров
api-unavailable = Не удалось загрузить описание API: { $reason }
api-admin = токен администратора
api-answers = Ответы
api-input = Параметр
api-input-where = Как передаётся
api-input-what = Что это
api-required = обязательный
api-place-query = параметр запроса
api-place-json = поле JSON
api-place-form = поле формы
api-place-file = файл в форме
