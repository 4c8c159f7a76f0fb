# The REST API's error sentences in Russian (server/src/localize.rs). The
# English ones are the errors' own messages, shared with the logs and the
# command line, so they have no file here.

# What was asked for, after "запросами"/"много"; a referenced message sees
# the caller's arguments.
error-what = { $what ->
    [horoscope] гороскопов
    [photo] фотографий
    [flags] отметок
    [wrong-admin-tokens] неверных токенов администратора
   *[other] «{ $what }»
}

error-upload-too-large = Файл больше предела в { $limit } МБ: отправьте файл поменьше.
error-bad-form = Не удалось прочитать загрузку как форму ({ $reason }).
error-missing-field = В форме нет поля «{ $field }».
error-bad-field = Поле «{ $field }» заполнено неверно ({ $reason }).
error-bad-json = Не удалось прочитать тело запроса как JSON ({ $reason }).
error-bad-query = Не удалось прочитать параметры запроса ({ $reason }).
error-photo-empty = Файл пуст: выберите фотографию (JPEG, PNG, WebP, GIF или BMP).
error-photo-not-an-image = Это не изображение, которое приложение умеет читать: загрузите фотографию в JPEG, PNG, WebP, GIF или BMP.
error-photo-too-large = Изображение размером { $width }x{ $height } пикселей; сторона может быть не больше { $side } пикселей: уменьшите его и попробуйте снова.
error-photo-too-many-pixels = В изображении { $width }x{ $height } пикселей; принимается не больше { $limit } мегапикселей: уменьшите его и попробуйте снова.
error-photo-damaged = Файл { $format } повреждён или обрезан и не читается ({ $reason }).
error-unknown-sign = Знака зодиака «{ $given }» нет: выберите один из двенадцати знаков.
error-bad-date = «{ $given }» — не дата: напишите её как ГГГГ-ММ-ДД, например 2026-03-21.
error-bad-temperature = Температура { $value } вне допустимого: возьмите значение больше 0 и не больше { $max }.
error-bad-top-p = Значение top_p { $value } вне допустимого: возьмите значение больше 0 и не больше 1.
error-unknown-language = Язык «{ $given }» не поддерживается: выберите en (английский) или ru (русский).
error-no-model = { $what ->
    [horoscope] Модель гороскопов не загружена
    [actor-recognition] Модель распознавания актёров не загружена
   *[other] Модель «{ $what }» не загружена
}, поэтому ответа нет: попросите администратора загрузить её.
error-loading = { $what ->
    [horoscope] Модель гороскопов ещё загружается
    [actor-recognition] Модель распознавания актёров ещё загружается
   *[other] Модель «{ $what }» ещё загружается
}: попробуйте снова через несколько секунд.
error-no-model-in-language = Здесь нет модели гороскопов на языке { $language }: попросите { $served }.
error-flag-reason-too-long = Причина длиной { $chars } символов; уложитесь в { $max }.
error-flag-bad-extension = Расширение «{ $extension }» не похоже на обычное расширение файла.
error-flag-bad-label = Имя должно быть не длиннее { $max } байт, без «/», «\» и без точки в начале.
error-flag-field-too-large = Поле { $field } занимает { $bytes } байт JSON; уложитесь в { $max }.
error-flag-field-too-deep = Поле { $field } вложено глубже { $max } уровней.
error-flag-queue-full = Очередь отметок заполнена ({ $flags }): администратору нужно её разобрать.
error-admin-off = Действия администратора (загрузка моделей, запуск конвейера) выключены: оператор может включить их через STARCAST_ADMIN_TOKEN.
error-unauthorized = Нужен токен администратора: пришлите его как «Authorization: Bearer <токен>».
error-upload-file-name = «{ $name }» — не имя файла весов: загрузите файл .pth, .pt, .bin или .safetensors.
error-upload-empty = Файл весов пуст.
error-bad-model = Загруженную модель нельзя обслуживать, поэтому осталась прежняя: { $reason }.
error-pipeline-running = Конвейер уже запущен: дождитесь окончания.
error-no-pipeline = На этом сервере конвейер не настроен.
error-busy = Сервер занят другими запросами { error-what }: попробуйте снова через { $seconds } с.
error-too-many-streams = С этого адреса уже открыто потоков гороскопов: { $cap }. Закройте один или дождитесь окончания и попробуйте снова.
error-rate-limited = Слишком много { error-what } с этого адреса: попробуйте снова через { $seconds } с.
error-no-such-model-file = Ни у одной модели нет такого файла: модель могла смениться, обновите страницу.
error-abandoned = Запрос оставлен до начала работы.
error-internal = На сервере что-то пошло не так; ошибка записана. Попробуйте позже.
